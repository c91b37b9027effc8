// Command pulumi-resource-kubernetes serves the published pulumi-kubernetes provider.
//
// Upstream's own main embeds files its `go generate` writes (git-ignored, so absent from the module);
// this one embeds the module's committed schema.json and terraform-mapping.json, which tools/build
// copies beside it from the module cache, and stamps the version into the schema as generate.go does.
package main

import (
	_ "embed"
	"encoding/json"
	"log"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var schema []byte

//go:embed terraform-mapping.json
var terraformMapping []byte

func main() {
	var spec map[string]any
	if err := json.Unmarshal(schema, &spec); err != nil {
		log.Fatalf("cannot read the embedded schema: %v", err)
	}
	spec["version"] = version.Version
	versioned, err := json.Marshal(spec)
	if err != nil {
		log.Fatalf("cannot write the versioned schema: %v", err)
	}
	var mapping any
	if err := json.Unmarshal(terraformMapping, &mapping); err != nil {
		log.Fatalf("cannot read the embedded terraform mapping: %v", err)
	}
	compactMapping, err := json.Marshal(mapping)
	if err != nil {
		log.Fatalf("cannot write the terraform mapping: %v", err)
	}
	provider.Serve("kubernetes", version.Version, versioned, compactMapping)
}
