"""Typed errors raised by the integration. Every message says what to fix.

No message ever contains an API key: build messages from ids, names and field paths only.
"""

from __future__ import annotations


class ManagedAgentsError(Exception):
    """Base class of every error this integration raises."""


# --- bad input, raised before anything is created remotely -------------------------------------


class ConfigurationError(ManagedAgentsError, ValueError):
    """Input that cannot work: fix the named field or setting and run again."""


class SpecValidationError(ConfigurationError):
    """An agent or environment spec breaks a rule of the API (limits, names, shapes)."""


class MissingCredentialsError(ConfigurationError):
    """No usable API key: set ``ANTHROPIC_API_KEY`` or the credentials block's ``api_key``."""


class BlockNotFoundError(ConfigurationError):
    """A named Prefect block does not exist (create it with ``deploy_agent`` first)."""


class InputFileError(ConfigurationError):
    """A local input file cannot be uploaded: missing, a directory, or a bad ``mount_path``."""


class MemoryStoreConfigError(ConfigurationError):
    """Memory-store attachments break a rule (more than 8, instructions too long, bad reference)."""


# --- what a flow-run parameter may not do (docs/security.md) -----------------------------------


class CredentialsDestinationError(ConfigurationError):
    """An API key would be sent to a base URL it was not saved with.

    A key from the environment (``ANTHROPIC_API_KEY``) only goes to the environment's own
    ``ANTHROPIC_BASE_URL`` (or https://api.anthropic.com); a credentials block with a
    ``base_url`` needs its own ``api_key``.
    """


class VaultNotAllowedError(ConfigurationError):
    """A run asked for a vault its block does not list (a parameter may only narrow the block's)."""


class InlineBlockError(ConfigurationError):
    """A deployment run was given an inline block; deployment parameters name saved blocks."""


class UnknownCustomToolError(SpecValidationError):
    """A custom tool reference names no registered tool (or an import path outside the allowed
    tool modules, or a Python builtin); register the function with ``@custom_tool``."""


class PathOutsideRootsError(ConfigurationError):
    """A local path (input file, batch file, spec file, output folder) resolves outside the
    configured roots (``MANAGED_AGENTS_INPUT_ROOTS`` / ``MANAGED_AGENTS_OUTPUT_ROOTS`` or the
    ``ManagedAgent`` block's ``input_roots`` / ``output_roots``)."""


# --- remote state that blocks the operation ----------------------------------------------------


class ApiUnreachableError(ManagedAgentsError, ConnectionError):
    """The API (or emulator) at ``base_url`` could not be reached."""


class RemoteObjectError(ManagedAgentsError):
    """A remote agent, environment, memory store or version is not usable as asked."""


class AgentArchivedError(RemoteObjectError):
    """The agent is archived; archived agents cannot start sessions or be updated."""


class EnvironmentArchivedError(RemoteObjectError):
    """The environment is archived; create a new one or point the spec at another."""


class AgentVersionNotFoundError(RemoteObjectError):
    """The requested agent version does not exist."""


class EnvironmentTypeChangeError(RemoteObjectError):
    """An existing environment's ``config.type`` differs from the spec's; the type cannot change."""


class MemoryStoreNotFoundError(RemoteObjectError):
    """No memory store has the given id or name (set ``create_if_missing`` to create it)."""


class AmbiguousMemoryStoreError(RemoteObjectError):
    """More than one memory store has the given name; attach it by id (``memstore_...``) instead."""


class MemoryStoreArchivedError(RemoteObjectError):
    """The memory store is archived; archived stores cannot be attached to new sessions."""


class VaultNotFoundError(RemoteObjectError):
    """No vault has the id or display name the spec gives; create it or fix the spec."""


class AmbiguousVaultError(RemoteObjectError):
    """More than one live vault has the display name the spec gives; name it by id (``vlt_...``)."""


class VaultArchivedError(RemoteObjectError):
    """The vault is archived; sessions cannot use it."""


class StaleAgentVersionError(RemoteObjectError):
    """Someone updated the agent since the pinned version was read (optimistic-lock conflict)."""


class AgentDriftError(RemoteObjectError):
    """The agent was changed outside the setup flow since the block's pin; rerun with ``force=True``."""


# --- session end states ------------------------------------------------------------------------


class SessionError(ManagedAgentsError):
    """A session ended in a state other than success.

    Args:
        message: What happened and what to do about it.
        session_id: The session's id.
        console_url: Where to inspect the session's trace.
    """

    def __init__(self, message: str, *, session_id: str, console_url: str | None = None) -> None:
        detail = f"{message} (session {session_id}"
        detail += f", {console_url})" if console_url else ")"
        super().__init__(detail)
        self.session_id = session_id
        self.console_url = console_url


class SessionRetriesExhaustedError(SessionError):
    """The session stopped with ``retries_exhausted`` after the service's own retries."""


class SessionBudgetReachedError(SessionError):
    """The session hit its ``budget.max_list_cost``."""


class SessionRefusedError(SessionError):
    """The model refused (``stop_reason: refusal``); ``stop_details`` says why."""


class SessionTerminatedError(SessionError):
    """The session was terminated (unrecoverable) or deleted."""


class SessionTimeoutError(SessionError, TimeoutError):
    """The session ran past ``max_duration``; it was interrupted."""


class SessionRequiresActionError(SessionError):
    """The session waits for tool confirmations or custom tool results the policy cannot give."""


class SessionNotAttachableError(SessionError):
    """A run was asked to re-attach to a session that is archived, terminated or of another agent."""


class UnexpectedStopReasonError(SessionError):
    """The session stopped for a reason this integration does not know."""


# --- outputs -----------------------------------------------------------------------------------


class OutputError(ManagedAgentsError):
    """An output file could not be collected safely."""


class UnsafeOutputPathError(OutputError):
    """A server-supplied file name would escape the output directory."""


class OutputIntegrityError(OutputError):
    """A downloaded file's size does not match its metadata."""


class OutputOverwriteError(OutputError):
    """An output would replace a file the collector did not write (or that changed since); nothing
    was overwritten."""
