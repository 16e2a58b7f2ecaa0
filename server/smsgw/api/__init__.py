"""The gRPC edge: servicers, authentication, and translation to and from protobuf."""
