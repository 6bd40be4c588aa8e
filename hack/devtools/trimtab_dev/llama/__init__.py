"""A real OpenAI-compatible model server for tests and the demo: llama.cpp's llama-server
serving a tiny generated model."""
