"""placeholder"""
TASKS = ()
