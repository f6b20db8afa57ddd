"""ddrank_steps: the stages of the ddrank workflow, one module per stage.

Importing the package must stay cheap (no torch), because the Snakefile imports
the config helpers from it while it builds the DAG.
"""

__version__ = "0.1.0"
