from django.urls import path, re_path

from gateway.v1 import chat, messages, models

urlpatterns = [
    path("chat/completions", chat.chat_completions),
    path("messages", messages.create_message),
    path("models", models.list_models),
    # Public ids contain a slash (openai/gpt-4o-mini).
    path("models/<path:model_id>", models.retrieve_model),
    re_path(r"^(?P<rest>.*)$", models.unknown_endpoint),
]
