"""What the study-level datastores share: one image id is one study, and its labels are
addressed by the same id under a tag (``original``, ``final``), each tag holding versions."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from monailabel.interfaces.datastore import Datastore, DefaultLabelTag


class StudyDatastore(Datastore):
    """MONAI Label's label-by-image bookkeeping for datastores where a label id is its
    study's id. Subclasses say which tags a study has labels under (``label_tags``)."""

    def __init__(self, name: str, description: str) -> None:
        self._name, self._description = name, description

    @abstractmethod
    def label_tags(self, image_id: str) -> list[str]:
        """The tags under which ``image_id`` has at least one label version, sorted."""

    def name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self._name = name

    def description(self) -> str:
        return self._description

    def set_description(self, description: str) -> None:
        self._description = description

    def get_label(self, label_id: str, label_tag: str, params: dict[str, Any] | None = None) -> Any:
        return open(self.get_label_uri(label_id, label_tag), "rb")  # noqa: SIM115 (the caller closes it)

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        """Tag -> label id, for every tag that has a label."""
        return {tag: image_id for tag in self.label_tags(image_id)}

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        return image_id if tag in self.label_tags(image_id) else ""

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        tag = label_tag or DefaultLabelTag.FINAL.value
        return [i for i in self.list_images() if tag in self.label_tags(i)]

    def get_unlabeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        tag = label_tag or DefaultLabelTag.FINAL.value
        return [i for i in self.list_images() if tag not in self.label_tags(i)]
