package main

import (
	"github.com/awslabs/operatorpkg/status"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

const (
	awsLabelDomain = "karpenter.k8s.aws"
	localNVMeLabel = awsLabelDomain + "/instance-local-nvme"
)

// The AWS provider's EC2NodeClass (karpenter.k8s.aws/v1), with only the fields Karpenter's core and this wrapper
// read: readiness (status.conditions) and what ephemeral storage derives from. Nothing here writes the object, so
// the fields left out are never lost. Registered in client-go's scheme, the one Karpenter's operator uses.
func init() {
	gv := schema.GroupVersion{Group: awsLabelDomain, Version: "v1"}
	metav1.AddToGroupVersion(scheme.Scheme, gv)
	scheme.Scheme.AddKnownTypes(gv, &EC2NodeClass{}, &EC2NodeClassList{})
}

type EC2NodeClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EC2NodeClassSpec   `json:"spec,omitempty"`
	Status EC2NodeClassStatus `json:"status,omitempty"`
}

type EC2NodeClassSpec struct {
	AMISelectorTerms    []AMISelectorTerm    `json:"amiSelectorTerms,omitempty"`
	BlockDeviceMappings []BlockDeviceMapping `json:"blockDeviceMappings,omitempty"`
	InstanceStorePolicy string               `json:"instanceStorePolicy,omitempty"`
}

type AMISelectorTerm struct {
	// Alias is `<family>@<version>` (bottlerocket@v1.66.0, al2023@latest).
	Alias string `json:"alias,omitempty"`
}

type BlockDeviceMapping struct {
	DeviceName string           `json:"deviceName,omitempty"`
	RootVolume bool             `json:"rootVolume,omitempty"`
	EBS        *BlockDeviceSize `json:"ebs,omitempty"`
}

type BlockDeviceSize struct {
	VolumeSize *resource.Quantity `json:"volumeSize,omitempty"`
}

type EC2NodeClassStatus struct {
	Conditions []status.Condition `json:"conditions,omitempty"`
}

type EC2NodeClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EC2NodeClass `json:"items"`
}

func (in *EC2NodeClass) StatusConditions(opts ...status.ForOption) status.ConditionSet {
	return status.NewReadyConditions().For(in, opts...)
}

func (in *EC2NodeClass) GetConditions() []status.Condition { return in.Status.Conditions }

func (in *EC2NodeClass) SetConditions(conditions []status.Condition) {
	in.Status.Conditions = conditions
}

func (in *EC2NodeClass) DeepCopyInto(out *EC2NodeClass) {
	*out = *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.AMISelectorTerms = append([]AMISelectorTerm(nil), in.Spec.AMISelectorTerms...)
	out.Spec.BlockDeviceMappings = nil
	for _, bdm := range in.Spec.BlockDeviceMappings {
		copied := bdm
		if bdm.EBS != nil {
			copied.EBS = &BlockDeviceSize{}
			if bdm.EBS.VolumeSize != nil {
				size := bdm.EBS.VolumeSize.DeepCopy()
				copied.EBS.VolumeSize = &size
			}
		}
		out.Spec.BlockDeviceMappings = append(out.Spec.BlockDeviceMappings, copied)
	}
	out.Status.Conditions = nil
	for _, c := range in.Status.Conditions {
		copied := c
		c.LastTransitionTime.DeepCopyInto(&copied.LastTransitionTime)
		out.Status.Conditions = append(out.Status.Conditions, copied)
	}
}

func (in *EC2NodeClass) DeepCopy() *EC2NodeClass {
	if in == nil {
		return nil
	}
	out := new(EC2NodeClass)
	in.DeepCopyInto(out)
	return out
}

func (in *EC2NodeClass) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func (in *EC2NodeClassList) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	out := &EC2NodeClassList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range in.Items {
		out.Items = append(out.Items, *in.Items[i].DeepCopy())
	}
	return out
}
