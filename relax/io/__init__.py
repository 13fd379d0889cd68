"""Reading networks, properties and data: ONNX and torch importers, convolution lowering, VNNLIB, MNIST."""
