"""Training: the networks (`models`), the training engine shared by both papers (`train`) and the backbone
pretrained without labels (`representation`)."""
