def write_fcs(path, sample): raise RuntimeError("writer not ready")
