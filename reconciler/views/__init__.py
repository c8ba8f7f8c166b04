"""App views: installed models linked into ComfyUI, A1111/Forge and SD.Next folders.

``apps`` holds the one table of where each app reads each kind of model; ``links`` places,
checks and removes a view's files.  Planning and applying views is reconcile's job
(``reconciler.reconcile.views``); a ModelView document is read by ``reconcile.manifest``.
"""
