"""Importers of other tools' pipeline files into Buildfiles (`bg import dvc.yaml`)."""
