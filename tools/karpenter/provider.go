package main

import (
	"context"
	stderrors "errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/awslabs/operatorpkg/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"sigs.k8s.io/karpenter/kwok/apis/v1alpha1"
	kwok "sigs.k8s.io/karpenter/kwok/cloudprovider"
	v1 "sigs.k8s.io/karpenter/pkg/apis/v1"
	"sigs.k8s.io/karpenter/pkg/cloudprovider"
)

// ec2NodeClassProvider is kwok's cloud provider serving NodePools whose nodeClassRef is an EC2NodeClass.
type ec2NodeClassProvider struct {
	*kwok.CloudProvider
	kubeClient    client.Client
	apiReader     client.Reader
	instanceTypes []*cloudprovider.InstanceType
	localNVMeGB   map[string]int64
}

func (p *ec2NodeClassProvider) GetSupportedNodeClasses() []status.Object {
	return []status.Object{&EC2NodeClass{}}
}

// GetInstanceTypes gives the types the ephemeral storage the pool's EC2NodeClass gives its nodes.
func (p *ec2NodeClassProvider) GetInstanceTypes(ctx context.Context, nodePool *v1.NodePool) ([]*cloudprovider.InstanceType, error) {
	nodeClass := &EC2NodeClass{}
	if err := p.kubeClient.Get(ctx, types.NamespacedName{Name: nodePool.Spec.Template.Spec.NodeClassRef.Name}, nodeClass); err != nil {
		return nil, fmt.Errorf("resolving node class, %w", err)
	}
	result := make([]*cloudprovider.InstanceType, 0, len(p.instanceTypes))
	for _, it := range p.instanceTypes {
		storage := p.ephemeralStorage(it.Name, nodeClass)
		capacity := it.Capacity.DeepCopy()
		capacity[corev1.ResourceEphemeralStorage] = storage
		overhead := *it.Overhead
		overhead.KubeReserved = overhead.KubeReserved.DeepCopy()
		// kube-reserved ephemeral storage and the 10% nodefs eviction threshold, as the AWS provider reserves them
		// (kubeReservedResources, evictionThreshold in pkg/providers/instancetype/types.go)
		overhead.KubeReserved[corev1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
		overhead.EvictionThreshold = corev1.ResourceList{
			corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(math.Ceil(float64(storage.Value())/100*10)), resource.DecimalSI),
		}
		result = append(result, &cloudprovider.InstanceType{
			Name:         it.Name,
			Requirements: it.Requirements,
			Offerings:    it.Offerings,
			Capacity:     capacity,
			Overhead:     &overhead,
		})
	}
	return result, nil
}

// ephemeralStorage follows the AWS provider's ephemeralStorage: the instance store's size with RAID0, else the
// block device marked rootVolume, else the AMI family's ephemeral device (Bottlerocket's data volume /dev/xvdb,
// AL2023's root /dev/xvda), else the provider's 20Gi default.
func (p *ec2NodeClassProvider) ephemeralStorage(instanceType string, nodeClass *EC2NodeClass) resource.Quantity {
	if gb, ok := p.localNVMeGB[instanceType]; ok && nodeClass.Spec.InstanceStorePolicy == "RAID0" {
		return resource.MustParse(fmt.Sprintf("%dG", gb))
	}
	device := "/dev/xvda"
	for _, term := range nodeClass.Spec.AMISelectorTerms {
		if strings.HasPrefix(strings.ToLower(term.Alias), "bottlerocket@") {
			device = "/dev/xvdb"
		}
	}
	for _, wantRoot := range []bool{true, false} {
		for _, bdm := range nodeClass.Spec.BlockDeviceMappings {
			matches := (wantRoot && bdm.RootVolume) || (!wantRoot && bdm.DeviceName == device)
			if matches && bdm.EBS != nil && bdm.EBS.VolumeSize != nil {
				return bdm.EBS.VolumeSize.DeepCopy()
			}
		}
	}
	return resource.MustParse("20Gi")
}

// Create launches through kwok once the EC2NodeClass exists and is Ready, with a same-named KWOKNodeClass for kwok.
func (p *ec2NodeClassProvider) Create(ctx context.Context, nodeClaim *v1.NodeClaim) (*v1.NodeClaim, error) {
	name := nodeClaim.Spec.NodeClassRef.Name
	nodeClass := &EC2NodeClass{}
	if err := p.kubeClient.Get(ctx, types.NamespacedName{Name: name}, nodeClass); err != nil {
		if errors.IsNotFound(err) {
			return nil, cloudprovider.NewInsufficientCapacityError(fmt.Errorf("resolving node class from nodeclaim, %w", err))
		}
		return nil, fmt.Errorf("resolving node class from nodeclaim, %w", err)
	}
	if ready := nodeClass.StatusConditions().Get(status.ConditionReady); !ready.IsTrue() {
		message := "EC2NodeClass has no Ready condition"
		if ready != nil {
			message = ready.Message
		}
		return nil, cloudprovider.NewNodeClassNotReadyError(stderrors.New(message))
	}
	if err := p.ensureKWOKNodeClass(ctx, name); err != nil {
		return nil, err
	}
	return p.CloudProvider.Create(ctx, nodeClaim)
}

// ensureKWOKNodeClass makes the KWOKNodeClass kwok's Create resolves by name, and waits until the cached client
// Create reads through sees it (a miss there is an insufficient-capacity error, which marks offerings unavailable).
func (p *ec2NodeClassProvider) ensureKWOKNodeClass(ctx context.Context, name string) error {
	mirror := &v1alpha1.KWOKNodeClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := p.apiReader.Get(ctx, types.NamespacedName{Name: name}, &v1alpha1.KWOKNodeClass{}); errors.IsNotFound(err) {
		if err := p.kubeClient.Create(ctx, mirror); err != nil && !errors.IsAlreadyExists(err) {
			return fmt.Errorf("creating KWOKNodeClass %s, %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("reading KWOKNodeClass %s, %w", name, err)
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		err := p.kubeClient.Get(ctx, types.NamespacedName{Name: name}, &v1alpha1.KWOKNodeClass{})
		return err == nil, client.IgnoreNotFound(err)
	})
}
