from django.urls import path, re_path

from gateway.v1 import (
    audio,
    chat,
    embeddings,
    images,
    media,
    messages,
    model_list,
    moderations,
    rerank,
    responses,
    videos,
)

urlpatterns = [
    path("chat/completions", chat.chat_completions),
    path("messages", messages.create_message),
    path("messages/count_tokens", messages.count_tokens),
    path("responses", responses.create_or_list_responses),
    path("responses/all", responses.delete_all_responses),
    path("responses/<str:response_id>", responses.retrieve_or_delete_response),
    path("responses/<str:response_id>/input_items", responses.list_input_items),
    path("videos", videos.videos),
    path("video/generation", videos.video_generation),
    path("videos/<str:video_id>", videos.video),
    path("videos/<str:video_id>/content", videos.video_content),
    path("images/generations", images.generations),
    path("images/edits", images.edits),
    path("audio/speech", audio.speech),
    path("audio/generation", audio.speech),
    path("audio/transcriptions", audio.transcriptions),
    path("embeddings", embeddings.embeddings),
    path("rerank", rerank.rerank),
    path("moderations", moderations.moderations),
    path("media/<str:file_id>", media.retrieve_media),
    path("media/<str:file_id>/content", media.media_content),
    path("models", model_list.list_models),
    # Public ids contain a slash (openai/gpt-4o-mini).
    path("models/<path:model_id>", model_list.retrieve_model),
    re_path(r"^(?P<rest>.*)$", model_list.unknown_endpoint),
]
