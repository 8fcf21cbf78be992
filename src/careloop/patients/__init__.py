"""The unified patient record (R1): one record per patient across departments."""
