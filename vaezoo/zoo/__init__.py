"""The pretrained model zoo."""
