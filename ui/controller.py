"""What the chat page does, over the gateway's HTTP API: ``PageController``.

One object per part of the page, each with one method per event of its part (the method
takes the event's inputs and returns, or yields, its outputs as Gradio values and updates),
so the page's behaviour can be driven without a browser, against any ``Client``:

- ``chat``: the Ask tab's chat (``ui.chat.Chat``: ask, retry, clear, rate);
- ``tickets``: its "Open a ticket" action (``ui.tickets.Tickets``);
- ``conversations``: the History tab (``ui.conversations.Conversations``);
- ``admin``: the Admin tab's sign-in, documents, index and feedback (``ui.admin.Admin``);
- ``analytics``: its analytics (``ui.analytics.AdminAnalytics``);
- ``failed_tickets``: its undelivered tickets (``ui.admin_tickets.AdminTickets``);

and the page's own events when it opens (``load_models``, ``whoami``) here.
Like the page, it imports nothing from ``assistant``: everything goes over HTTP.
"""

# Gradio reads the `gr.Request` annotations at runtime: no postponed ones.
import gradio as gr

from ui.admin import Admin
from ui.admin_tickets import AdminTickets
from ui.analytics import AdminAnalytics
from ui.chat import Chat
from ui.client import Client, PageError, session_of
from ui.conversations import Conversations
from ui.render import LINK_BASE, plain
from ui.tickets import Tickets


class PageController:
    """The page's behaviour: the gateway through ``client``, ``model`` the default model,
    answers of at most ``max_tokens``, source links under ``link_base``."""

    def __init__(
        self, client: Client, model: str, *, max_tokens: int = 256, link_base: str = LINK_BASE
    ) -> None:
        self.client = client
        self.model = model
        self.chat = Chat(client, model, max_tokens=max_tokens, link_base=link_base)
        self.tickets = Tickets(client)
        self.conversations = Conversations(client, link_base=link_base)
        self.admin = Admin(client)
        self.analytics = AdminAnalytics(client)
        self.failed_tickets = AdminTickets(client)

    def load_models(self, current: str, request: gr.Request):
        """The picker, filled when the page opens: the server is up by then."""
        names = self.client.models(session_of(request)) or [self.model]
        return gr.update(choices=names, value=current if current in names else names[0])

    def whoami(self, request: gr.Request):
        """'Signed in as ...' and a sign-out link, when the person came through sign-in."""
        session = session_of(request)
        if not session:
            return gr.update(visible=False)
        try:
            me = self.client.request("GET", "/me", session=session).json()
        except PageError:
            return gr.update(visible=False)
        return gr.update(
            value=f"Signed in as **{plain(me['user'])}** · [Sign out](/logout)", visible=True
        )
