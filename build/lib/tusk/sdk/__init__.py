from tusk.sdk._client import Client, FileWriter

__all__ = ["Client", "FileWriter"]
