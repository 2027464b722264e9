"""The replay provider: answers from a cassette of recorded chat-completions responses.

A call becomes exactly the request body the OpenAI-compatible provider would send
(:func:`~lifeos.agents.providers.openai_compat.chat_request`); the cassette finds the next
recording for that request's key, and the recorded body is parsed exactly as a live one
(:func:`~lifeos.agents.providers.openai_compat.parse_chat_response`). A request with no
recording raises :class:`~lifeos.agents.api.ReplayMiss` naming its key. Replay measures no
latency, so the same cassette always gives equal responses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from lifeos.agents.api import AgentCall, AgentResponse
from lifeos.agents.cassette import Cassette
from lifeos.agents.providers.openai_compat import chat_request, parse_chat_response

__all__ = ["ReplayProvider"]


class ReplayProvider:
    """An :class:`~lifeos.agents.api.AgentProvider` that plays a cassette."""

    def __init__(
        self,
        cassette: Cassette,
        pricing: Mapping[str, float] | None = None,
        *,
        model: str | None = None,
    ) -> None:
        """Play ``cassette``.

        Args:
            cassette: The recordings.
            pricing: Per-million-token prices used when a recording reports no cost.
            model: The model used when a call names none (as for the live provider).
        """
        self.cassette = cassette
        self.pricing = dict(pricing) if pricing else None
        self.model = model

    def call(self, request: AgentCall) -> AgentResponse:
        """Answer ``request`` with its next recording.

        Args:
            request: The agent call.

        Returns:
            The recorded response, parsed as a live one, its usage priced.

        Raises:
            ReplayMiss: No recording is left for the request's key.
            AgentError: The recorded body is malformed.
        """
        recording = self.cassette.next(chat_request(request, self.model))
        response = parse_chat_response(recording.response, None)
        return dataclasses.replace(response, usage=response.usage.priced(self.pricing))
