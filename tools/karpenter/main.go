// Command karpenter runs Karpenter's core controllers (sigs.k8s.io/karpenter: provisioner, scheduler, NodeClaim
// lifecycle, limits, disruption) with its kwok cloud provider, as upstream's kwok/main.go does, for NodePools that
// reference the AWS provider's `karpenter.k8s.aws/v1 EC2NodeClass` (the kind the program emits).
//
// The kwok provider only serves its own KWOKNodeClass, and the AWS provider (github.com/aws/karpenter-provider-aws)
// needs EC2 itself. What this wrapper adds, and nothing more:
//   - the EC2NodeClass kind, read-only: the provider's supported node class, so that NodePools naming it are managed
//     and their readiness follows the EC2NodeClass's Ready condition (set by whoever stands in for the AWS provider's
//     node class controller: the tests);
//   - the AWS provider's instance type labels (`karpenter.k8s.aws/instance-family`, `-gpu-name`, ...): each entry of
//     the instance types file may carry `labels`, which become the type's requirements and well-known labels, as
//     computeRequirements in the AWS provider's pkg/providers/instancetype/types.go makes them;
//   - ephemeral storage per node class, as the AWS provider computes it (ephemeralStorage in the same file): the
//     instance store with `instanceStorePolicy: RAID0`, else the root volume, else the AMI family's data device;
//   - a KWOKNodeClass named like each EC2NodeClass, made at launch: kwok's Create resolves its node class by name.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/samber/lo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kwok "sigs.k8s.io/karpenter/kwok/cloudprovider"
	kwokoptions "sigs.k8s.io/karpenter/kwok/options"
	v1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
	"sigs.k8s.io/karpenter/pkg/cloudprovider/overlay"
	"sigs.k8s.io/karpenter/pkg/controllers"
	"sigs.k8s.io/karpenter/pkg/controllers/node/health"
	"sigs.k8s.io/karpenter/pkg/controllers/state"
	"sigs.k8s.io/karpenter/pkg/operator"
	"sigs.k8s.io/karpenter/pkg/scheduling"
)

func main() {
	ctx, op := operator.NewOperator()
	instanceTypes, localNVMe, err := awsLabelledInstanceTypes(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "failed constructing instance types")
		os.Exit(1)
	}
	kwokProvider := kwok.NewCloudProvider(ctx, op.GetClient(), instanceTypes)
	undecorated := &ec2NodeClassProvider{
		CloudProvider: kwokProvider,
		kubeClient:    op.GetClient(),
		apiReader:     op.GetAPIReader(),
		instanceTypes: instanceTypes,
		localNVMeGB:   localNVMe,
	}
	cloudProvider := overlay.Decorate(undecorated, op.GetClient(), op.InstanceTypeStore)
	repairPolicyMatcher := lo.Must(health.NewRepairPolicyMatcher(ctx, cloudProvider))
	clusterState := state.NewCluster(op.Clock, op.GetClient(), cloudProvider, state.WithRepairPolicyMatcher(repairPolicyMatcher))
	op.
		WithControllers(ctx, controllers.NewControllers(
			ctx,
			op.Manager,
			op.Clock,
			op.GetClient(),
			op.EventRecorder,
			cloudProvider,
			undecorated,
			clusterState,
			op.InstanceTypeStore,
			op.PredictionStore,
		)...).Start(ctx)
}

// instanceTypeLabels is what this wrapper reads from each entry of the instance types file besides kwok's own fields.
type instanceTypeLabels struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// awsLabelledInstanceTypes builds kwok's instance types from the file (--instance-types-file-path) and gives each
// the labels its entry carries, registering their keys as well known (the AWS provider's labels.go does the same for
// its keys): a NodePool requirement on a well-known key the type defines must intersect, one it does not define is
// allowed (scheduling.Requirements.Compatible), so a type without the label would pass any instance-family filter.
func awsLabelledInstanceTypes(ctx context.Context) ([]*cloudprovider.InstanceType, map[string]int64, error) {
	path := kwokoptions.FromContext(ctx).InstanceTypesFilePath
	if path == "" {
		return nil, nil, fmt.Errorf("--instance-types-file-path is required (kwok's built-in types carry no AWS labels)")
	}
	instanceTypes, err := kwok.ConstructInstanceTypes(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var entries []instanceTypeLabels
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	labelsByName := lo.SliceToMap(entries, func(e instanceTypeLabels) (string, map[string]string) { return e.Name, e.Labels })
	localNVMe := map[string]int64{}
	for _, it := range instanceTypes {
		for key, value := range labelsByName[it.Name] {
			v1.WellKnownLabels = v1.WellKnownLabels.Insert(key)
			it.Requirements.Add(scheduling.NewRequirement(key, corev1.NodeSelectorOpIn, value))
		}
		if gb, ok := labelsByName[it.Name][localNVMeLabel]; ok {
			q, err := resource.ParseQuantity(gb)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: label %s=%q is not a number of GB", it.Name, localNVMeLabel, gb)
			}
			localNVMe[it.Name] = q.Value()
		}
	}
	v1.RestrictedLabelDomains = v1.RestrictedLabelDomains.Union(sets.New(awsLabelDomain))
	return instanceTypes, localNVMe, nil
}
