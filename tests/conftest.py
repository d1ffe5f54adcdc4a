import os

def pytest_addoption(parser):
    parser.addoption('--skip-slow', action='store_true', help="skip notebook cells flagged `#| slow` (run by default)")

# Tests never reach a model or data hub: a missing hub object must fail at once, not retry for a minute.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('WANDB_MODE', 'offline')
os.environ.setdefault('NO_MKDOCS_2_WARNING', '1')
