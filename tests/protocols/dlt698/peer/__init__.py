"""Scripts run by the PyPI ``dlt698`` peer's own interpreter (never imported by Taiqu)."""
