"""Analysis of studies: pure functions over predictions and rounds.csv rows (calibration, FLOPs, energy, curves,
replicates) and the report's figures and tables. Works on any study directory: it reads only what a study wrote."""
