"""python -m forgeml.cli"""
from forgeml.cli import main

main()
