"""The page's layout, one module per tab (``ask``, ``history``, ``admin``): each builds its
tab's components inside the page's Blocks and wires their events to the methods of
``ui.controller.PageController``; what an event does is never written here."""
