"""Small helpers every layer may use: files, JSON, standard streams, times."""
