"""Archive formats: tar and zip readers, the extraction safety policy, the writer."""
