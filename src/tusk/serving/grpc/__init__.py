"""The Open Inference Protocol V2 over gRPC (KServe's ``inference.GRPCInferenceService``).

``grpc_predict_v2.proto`` is vendored (Apache-2.0, see NOTICE) and its Python
bindings are committed generated (``scripts/gen-grpc.sh``). Importing this
package imports grpcio: only ``tusk server`` does, and only when it serves gRPC.
"""

from tusk.serving.grpc._server import GrpcEndpoint, Identify

__all__ = ["GrpcEndpoint", "Identify"]
