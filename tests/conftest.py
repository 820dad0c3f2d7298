pytest_plugins = ["tests.lab_fixture"]
