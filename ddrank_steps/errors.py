"""Errors that reach the user: each says which file or key is wrong and how to fix it."""


class ConfigError(ValueError):
    """A config value is wrong; the message names the key and the fix."""


class InputError(ValueError):
    """An input file is wrong.

    The message always has the same three parts so a failed job's log says at a
    glance what to change: the file, the field inside it, and what was expected.
    """

    def __init__(self, path, field: str, problem: str, fix: str = ""):
        self.path = str(path)
        self.field = field
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: field '{field}': {problem}"
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)
