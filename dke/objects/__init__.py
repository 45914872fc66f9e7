"""Objects: compile a checked environment into the Kubernetes objects of one run, and write them."""
