"""Stimuli: records, the DIRTI loader, any rated image set, the generated demo set, the Zenodo fetch."""
