"""Serving: deployments of model commits over HTTP (Open Inference Protocol V2), and versioned algorithms.

``spec`` (what a deployment is), ``deployments`` (stored, with revisions),
``routing`` (traffic split, pure functions), ``tensors`` (OIP codec),
``binary`` (OIP's binary tensor data extension), ``bodies`` (body limit,
gzip/deflate), ``batching``, ``detectors``, ``metrics``, ``reqlog`` (request logs into a repo),
``live`` (what a server process holds; hot swap), ``app`` (the HTTP app), ``grpc`` (OIP V2 over gRPC),
``server`` (uvicorn workers), ``algorithms``.
"""
