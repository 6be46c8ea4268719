"""``scan_model_input``: ask for every field of a pydantic model in the terminal.

A local run without ``manual_input`` asks the scientist for the files and parameters
(questionary prompts; paths complete). Each answer is validated by the model's own field
type at once, so a missing file or a bad number is asked again, not reported at the end.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)


def scan_model_input(model_class: type[M], *, parent: str = "", **prompt_options: Any) -> M:
    """Prompt for each field (nested models field by field) and return the validated model.

    ``prompt_options`` go to every questionary prompt (``input=``/``output=`` of
    prompt_toolkit, for tests and embedding). Raises KeyboardInterrupt when the user aborts.
    """
    import questionary

    values: dict[str, Any] = {}
    for name, info in model_class.model_fields.items():
        label = f"{parent}.{name}" if parent else name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not prompt_options:
                questionary.print(info.description or label, style="bold")
            values[name] = scan_model_input(annotation, parent=label, **prompt_options)
            continue
        adapter = TypeAdapter(annotation)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        prompt = f"{info.description} ({label})" if info.description else label
        if default is not None:
            prompt += f" [{default}]"

        def check(text: str, adapter: Any = adapter, default: Any = default) -> bool | str:
            if text == "" and default is not None:
                return True
            try:
                adapter.validate_python(text)
            except (ValidationError, ValueError, TypeError) as exc:
                return _short(exc)
            return True

        path_like = getattr(annotation, "__analysisrun_input_method__", "") == "path"
        ask = questionary.path if path_like else questionary.text
        answer = ask(prompt + ":", validate=check, **prompt_options).ask()
        if answer is None:
            raise KeyboardInterrupt
        values[name] = (
            default if answer == "" and default is not None else adapter.validate_python(answer)
        )
    return model_class.model_validate(values)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]) for e in exc.errors())
    return str(exc)


__all__ = ["scan_model_input"]
