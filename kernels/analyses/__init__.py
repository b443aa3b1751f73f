"""Gradient analyses: measurements that explain why the attacks behave as they do, no reconstruction.

- `gradient_similarity` (Table II): one image's gradient against batches in which 1..B images share its label.
- `gradient_embedding` (Figure 4): a t-SNE map of per-image gradients and their mean pairwise cosine.
- `activation_inputs` (Figure 8): histograms, with fixed bins, of what every activation layer receives.

Each is run by the kernel of the same name in kernels/jobs/.
"""
