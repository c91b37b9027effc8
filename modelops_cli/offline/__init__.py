"""The mock engine: a stack's program evaluated under the Pulumi SDK's mocks, without a cloud, and the tree
the `plan` verb prints of its result."""
