"""The lookup API: FastAPI over the published ranking (see docs/API.md); no TensorFlow here."""
