// Package distributed lays mmft's work out over GPUs: which GPUs generate
// rollouts and which train (Layout), how the trainer's programs are sharded
// ZeRO-3/FSDP-style over the training GPUs with XLA's own AutoSharding
// (FSDP, an execution.Sharding), how much memory each GPU needs (Plan), how
// new adapters reach the rollout GPUs after each optimizer step (Sync,
// Gate) and how processes on several hosts would find each other
// (Handshake, ClusterLayout; see docs/DISTRIBUTED.md).
//
// The model never imports this package: the trainer and engine run their
// programs on an execution.Runner whose Placement this package fills.
package distributed
