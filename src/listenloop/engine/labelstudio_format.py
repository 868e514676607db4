"""Label Studio's JSON task format for audio classification, as pydantic models.

What Label Studio exports ("JSON" export, https://labelstud.io/guide/task_format) and imports:
a JSON list of tasks, each with `data` (the audio's URL under a key such as `audio`),
`annotations` (one per annotator's submission: `result` items, `completed_by`, `created_at`,
`was_cancelled` for a skip, `ground_truth`) and `predictions` (a model's `result` with a
`score`). An audio classification project's results are `choices` items:
`{"type": "choices", "from_name": "label", "to_name": "audio", "value": {"choices": [LABEL]}}`
(several labels where the labelling config allows `choice="multiple"`).

The models check that shape and keep every other field (`extra="allow"`): Label Studio adds
fields between versions, and what listenloop does not read it still carries through. Both the
export (`engine.labelstudio`) and the import validate against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from listenloop.engine.errors import InvalidError

FROM_NAME = "label"  # the <Choices name="label" toName="audio"> of the labelling config
TO_NAME = "audio"  # the <Audio name="audio" value="$audio"> it labels
DATA_KEY = "audio"


class ChoicesValue(BaseModel):
    """A choices result's value: the chosen labels (one for single choice)."""

    model_config = ConfigDict(extra="allow")

    choices: list[str]


class Result(BaseModel):
    """One region or choice of an annotation or prediction (other result types are kept as they are)."""

    model_config = ConfigDict(extra="allow")

    type: str
    from_name: str
    to_name: str
    value: dict[str, Any]

    def labels(self) -> list[str] | None:
        """The chosen labels of a `choices` result, None for any other type."""
        if self.type != "choices":
            return None
        return ChoicesValue.model_validate(self.value).choices


class Annotation(BaseModel):
    """One annotator's submission on a task."""

    model_config = ConfigDict(extra="allow")

    result: list[Result]
    completed_by: int | dict[str, Any] | None = None
    created_at: datetime | None = None
    was_cancelled: bool = False
    ground_truth: bool = False


class Prediction(BaseModel):
    """A model's (or, in listenloop's export, the aggregate's) labels for a task, with a score."""

    model_config = ConfigDict(extra="allow")

    result: list[Result]
    score: float | None = None
    model_version: str | None = None


class Task(BaseModel):
    """One Label Studio task: the data it shows, its annotations and predictions."""

    model_config = ConfigDict(extra="allow")

    id: int | None = None
    data: dict[str, Any]
    annotations: list[Annotation] = Field(default_factory=list)
    predictions: list[Prediction] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    file_upload: str | None = None


TASKS = TypeAdapter(list[Task])


def _choices_ok(index: int, task: Task) -> None:
    """Every choices result carries a valid `value.choices` (pydantic cannot say it per type)."""
    parts = [("annotations", i, a) for i, a in enumerate(task.annotations)]
    parts += [("predictions", i, p) for i, p in enumerate(task.predictions)]
    for key, i, part in parts:
        for j, result in enumerate(part.result):
            try:
                result.labels()
            except ValidationError as exc:
                err = exc.errors()[0]
                inner = ".".join(str(p) for p in err["loc"])
                raise InvalidError(
                    f"not Label Studio tasks: {index}.{key}.{i}.result.{j}.value.{inner}: {err['msg']}"
                ) from None


def parse_tasks(data: bytes | str | list[Any], what: str = "tasks") -> list[Task]:
    """Label Studio tasks from JSON text (or the decoded list); InvalidError says where it is wrong."""
    try:
        tasks = TASKS.validate_json(data) if isinstance(data, bytes | str) else TASKS.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidError(f"{what}: not Label Studio tasks: {where or 'top level'}: {err['msg']}") from None
    try:
        for index, task in enumerate(tasks):
            _choices_ok(index, task)
    except InvalidError as exc:
        raise InvalidError(f"{what}: {exc}") from None
    return tasks
