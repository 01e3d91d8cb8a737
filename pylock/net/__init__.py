"""HTTP: downloads with retries, redirects and rewrites, and streaming into extraction."""
