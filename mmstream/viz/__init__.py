"""Live views of a running graph: the Foxglove bridge, the terminal monitor, annotated frames."""
