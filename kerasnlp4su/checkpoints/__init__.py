"""Checkpoint IO: TF1 reader/writer, HuggingFace safetensors, name-mapping formats.

A regular package (not a namespace folder) so that `find_packages` ships it in the wheel.
"""
