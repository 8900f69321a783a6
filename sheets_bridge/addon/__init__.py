"""The Google Workspace add-on (HTTP runtime): a side panel in the sheet, served by the bridge.

Google posts an event (JSON) to our HTTPS endpoint and renders the card JSON we answer with.
The modules, bottom up:

- :mod:`.auth`: who is calling (Google's ID token in ``Authorization``) and who is asking (the
  user's ID token in the event), verified with google-auth before anything else is read;
- :mod:`.refusals`: refused requests counted where ``sheets-bridge status`` reads them;
- :mod:`.panel`: what the bridge knows, gathered through the backend roles and the state;
- :mod:`.cards`: that knowledge as card JSON (pure), checked by :mod:`.card_schema`;
- :mod:`.app`: the Starlette app; :mod:`.server`: uvicorn, alone or beside the scheduler.
"""

from __future__ import annotations
