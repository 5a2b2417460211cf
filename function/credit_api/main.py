"""Entry point: ``app`` for uvicorn (``make run``) and ``handler`` for Lambda (``credit_api.main.handler``).

Everything here runs once per cold start: settings from the environment, then the app with
its model store and decision log. The model itself loads on the first request that needs it
(and is counted as ``ModelLoadTimeMs``).
"""

from __future__ import annotations

import warnings

from credit_api.api import create_app
from credit_api.lambda_handler import make_handler
from credit_api.settings import Settings
from credit_api.snapstart import install

# GET routes publish no metrics of their own; Powertools would warn on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

settings = Settings.from_env()
app = create_app(settings)
handler = make_handler(app)
install(app.state.service.store, app.state.service.log, handler)
