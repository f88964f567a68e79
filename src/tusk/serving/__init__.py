"""Serving: the request path of deployments of model commits (Open Inference Protocol V2, REST and gRPC).

``routing`` (traffic split, pure functions), ``tensors`` (OIP codec), ``binary`` (OIP's binary tensor data
extension), ``bodies`` (body limit, gzip/deflate), ``batching``, ``detectors``, ``explanations``, ``metrics``,
``reqlog`` (request logs into a repo), ``live`` (what a server process holds; hot swap), ``app`` (the HTTP
app), ``grpc`` (OIP V2 over gRPC). What a deployment is and the stored deployments are ``tusk.deployments``;
versioned algorithms are ``tusk.algorithms``; the processes that serve are ``tusk.root``.
"""
