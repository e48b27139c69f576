"""The state file and the per-store record it keeps."""
