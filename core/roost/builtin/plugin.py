"""The built-in plugin: core task, trigger and task-runner types, registered like any other plugin."""

from roost import hookimpl


@hookimpl
def register_task_types(register):
    from roost.builtin import catalogue  # by id: each module is imported when one of its types is used

    register(*catalogue.TASKS)


@hookimpl
def register_trigger_types(register):
    from roost.builtin import catalogue

    register(*catalogue.TRIGGERS)


@hookimpl
def register_log_exporters(register):
    from roost.builtin import catalogue

    register(*catalogue.LOG_EXPORTERS)


@hookimpl
def register_task_runners(register):
    from roost.builtin import catalogue

    register(*catalogue.TASK_RUNNERS)


@hookimpl
def register_credential_types(register):
    from roost.credentials import github, oauth2

    register("oauth2_client_credentials", oauth2.ClientCredentials)
    register("oauth2_jwt_bearer", oauth2.JwtBearer)
    register("oauth2_private_key_jwt", oauth2.PrivateKeyJwt)
    register("github_app", github.GitHubApp)


@hookimpl
def register_storage_backends(register):
    from roost.store.storage import LocalBackend

    register("local", LocalBackend())


@hookimpl
def register_secret_backends(register):
    from roost.secret_backends import EnvBackend

    register("env", EnvBackend())
