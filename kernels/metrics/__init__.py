"""Reconstruction quality: the standard mode (standard), the authors' (paper), gradient cosines
(cosine), and a client's reconstruction turned into scored rows (scoring)."""
