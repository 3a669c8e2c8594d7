// Package grpo holds the math and the state of the GRPO trainer as pure
// building blocks that the training loop wires together:
//
//   - Config: every training hyper-parameter, loadable from YAML and from
//     flags (with the seed's flag names as aliases), validated in one place;
//   - Advantages (host side) and GroupAdvantages (in a graph): group-relative
//     advantages, with zero-variance groups counted and dropped;
//   - Loss: the clipped GRPO surrogate with a k3 KL penalty, the grpo, bnpo,
//     dr_grpo and dapo aggregations, truncated importance-sampling correction
//     and truncated-completion masking, as a GoMLX graph function whose
//     gradient is taken by GoMLX's autodiff;
//   - AdamW.Update: PyTorch's AdamW with global-norm gradient clipping and a
//     NaN/Inf guard, as a graph function over parameter and state nodes, so
//     that loss, gradient and update compile into one program;
//   - Schedule: learning-rate schedules (the seed's linear decay, constant,
//     cosine), evaluated on the host;
//   - Checkpoint: adapters, optimizer state and the loop's state written to a
//     directory atomically and read back bit for bit, and Retention, the
//     policy that keeps evenly spaced checkpoints plus the latest.
//
// Graph functions follow GoMLX's convention: they take and return nodes and
// panic (with an error naming the input) on a misuse that only the caller's
// code can cause; Exec turns such panics into errors.
package grpo
