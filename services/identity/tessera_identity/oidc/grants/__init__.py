"""The token endpoint's grants, one module each, written step by step against their RFCs."""
