//! Loading Hugging Face safetensors checkpoints into libtorch tensors.
