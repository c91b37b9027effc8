// Command pulumi-language-python is a STAND-IN for Pulumi's Python language host.
//
// The real host lives in its own Go module (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3),
// which the Go module proxy reachable here does not serve. This stand-in implements the part of the
// LanguageRuntime protocol that `pulumi preview|up|destroy --policy-pack` uses, on top of the published
// sdk/v3 packages of the same Pulumi release: the Python toolchain resolution (uv, pip, poetry virtualenvs)
// is upstream's own `python/toolchain` package, programs run through upstream's
// `pulumi-language-python-exec` script (copied from the sdk/v3 module by tools/build), and policy packs
// through `python -m pulumi.policy` and source plugins (a component package) as `python <plugin dir>`, exactly
// as the real host launches them; `pulumi package add` gets upstream's Python SDK generator and toolchain
// linking (packages.go). What it does not do: program conversion, packing SDKs, `pulumi new` prompts,
// debugging.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Exit code with which pulumi-language-python-exec says it already showed the user an actionable message.
const userActionableExitCode = 32

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
}

func main() {
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	host := &languageHost{execScript: self + "-exec"}
	for _, arg := range os.Args[1:] {
		if !strings.HasPrefix(arg, "-") {
			host.engineAddress = arg
		}
	}
	if _, err := os.Stat(host.execScript); err != nil {
		fatal(fmt.Errorf("missing executor %s beside the language host: %w", host.execScript, err))
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fatal(err)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python (stand-in): %v\n", err)
	os.Exit(1)
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// resolveToolchain reads the project's runtime options (toolchain, virtualenv) as the real host does.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, errors.New("no program info in the request")
	}
	options := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Auto,
	}
	fields := info.GetOptions().GetFields()
	if v, ok := fields["virtualenv"]; ok {
		options.Virtualenv = v.GetStringValue()
	}
	if v, ok := fields["toolchain"]; ok {
		switch v.GetStringValue() {
		case "pip":
			options.Toolchain = toolchain.Pip
		case "uv":
			options.Toolchain = toolchain.Uv
		case "poetry":
			options.Toolchain = toolchain.Poetry
		}
	}
	return toolchain.ResolveToolchain(options)
}

// pluginManifestScript lists the installed packages that ship a pulumi-plugin.json (the SDKs of resource
// providers), which is how the real host answers GetRequiredPackages.
const pluginManifestScript = `
import importlib.metadata, json
found = []
for dist in importlib.metadata.distributions():
    for f in dist.files or []:
        if f.name == "pulumi-plugin.json" and f.parent.name.startswith("pulumi_"):
            try:
                found.append(json.loads(f.read_text()))
            except Exception:
                pass
print(json.dumps(found))
`

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", pluginManifestScript)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing installed Pulumi packages: %w", err)
	}
	var manifests []struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	}
	if err := json.Unmarshal(out, &manifests); err != nil {
		return nil, fmt.Errorf("reading installed Pulumi packages: %w", err)
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, m := range manifests {
		if !m.Resource || m.Name == "" {
			continue
		}
		version := m.Version
		if version != "" && !strings.HasPrefix(version, "v") {
			version = "v" + version
		}
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: m.Name, Version: version, Server: m.Server,
		})
	}
	return resp, nil
}

func (h *languageHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	packages, err := h.GetRequiredPackages(ctx, &pulumirpc.GetRequiredPackagesRequest{Info: req.GetInfo()})
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range packages.GetPackages() {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Kind: p.GetKind(), Name: p.GetName(), Version: p.GetVersion(), Server: p.GetServer(),
		})
	}
	return resp, nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	args := []string{h.execScript}
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	program := req.GetInfo().GetEntryPoint()
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	// A stack without config sends none: the executor wants an empty object and list, not JSON null.
	configMap, secretKeyList := req.GetConfig(), req.GetConfigSecretKeys()
	if configMap == nil {
		configMap = map[string]string{}
	}
	if secretKeyList == nil {
		secretKeyList = []string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(secretKeyList)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.GetInfo().GetProgramDirectory()
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == userActionableExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python executor: %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// RunPlugin runs a Python plugin as the real host does: a policy pack (kind "analyzer") through
// `python -m pulumi.policy`, a source-based provider such as a component package (kind "resource", a
// directory with PulumiPlugin.yaml) as `python <plugin directory> <engine args>`, i.e. its __main__.py, under
// the toolchain its runtime options name.
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	programDir := req.GetInfo().GetProgramDirectory()
	var pythonArgs []string
	switch req.GetKind() {
	case "resource":
		if _, err := os.Stat(filepath.Join(programDir, "__main__.py")); err != nil {
			return fmt.Errorf("the plugin %s has no __main__.py to run: %w", programDir, err)
		}
		pythonArgs = append([]string{"-u", programDir}, req.GetArgs()...)
	case "analyzer", "":
		pythonArgs = append(append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...), programDir)
	default:
		return fmt.Errorf("the stand-in host cannot run a Python plugin of kind %q", req.GetKind())
	}
	cmd, err := tc.Command(server.Context(), pythonArgs...)
	if err != nil {
		return err
	}
	cmd.Dir = req.GetPwd()
	cmd.Env = append(cmd.Env, req.GetEnv()...)

	var send sync.Mutex
	stream := func(r io.Reader, wrap func([]byte) *pulumirpc.RunPluginResponse, done *sync.WaitGroup) {
		defer done.Done()
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				send.Lock()
				_ = server.Send(wrap(append([]byte{}, buf[:n]...)))
				send.Unlock()
			}
			if err != nil {
				return
			}
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var done sync.WaitGroup
	done.Add(2)
	go stream(stdout, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
	}, &done)
	go stream(stderr, func(b []byte) *pulumirpc.RunPluginResponse {
		return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
	}, &done)
	done.Wait()
	exitCode := 0
	if err := cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return err
		}
		exitCode = exitErr.ExitCode()
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(exitCode)}})
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	if info == nil {
		info = &pulumirpc.ProgramInfo{RootDirectory: req.GetDirectory(), ProgramDirectory: req.GetDirectory()}
	}
	tc, err := resolveToolchain(info)
	if err != nil {
		return err
	}
	out := &lineSender{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	errOut := &lineSender{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	return tc.InstallDependencies(server.Context(), info.GetProgramDirectory(),
		req.GetUseLanguageVersionTools(), true, out, errOut)
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	about, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: about.PythonExecutable,
		Version:    about.PythonVersion.String(),
		Metadata:   map[string]string{"host": "modelops stand-in"},
	}, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range packages {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}

func (h *languageHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// lineSender forwards a toolchain's output to the engine a line at a time.
type lineSender struct {
	send    func([]byte) error
	pending []byte
}

func (l *lineSender) Write(p []byte) (int, error) {
	l.pending = append(l.pending, p...)
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			break
		}
		if err := l.send(l.pending[:i+1]); err != nil {
			return 0, err
		}
		l.pending = l.pending[i+1:]
	}
	return len(p), nil
}
