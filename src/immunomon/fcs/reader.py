"""FCS reader (being written)."""
class FCSMetadata: pass
def read_fcs(path, dataset=0): raise RuntimeError("reader not ready")
def read_fcs_metadata(path): raise RuntimeError("reader not ready")
