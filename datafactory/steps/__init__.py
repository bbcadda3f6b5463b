"""The step registry: recipe step names -> classes. One step per file."""
from datafactory.steps.base import Step
from datafactory.steps.decontaminate import Decontaminate
from datafactory.steps.dedup import Dedup
from datafactory.steps.evolve import Evolve
from datafactory.steps.filter import Filter
from datafactory.steps.judge import Judge
from datafactory.steps.language import Language
from datafactory.steps.mix import Mix
from datafactory.steps.near_dedup import NearDedup
from datafactory.steps.normalize import Normalize
from datafactory.steps.pair import Pair
from datafactory.steps.pii import Pii
from datafactory.steps.quality import Quality
from datafactory.steps.rename import Rename
from datafactory.steps.respond import Respond
from datafactory.steps.sample import Sample
from datafactory.steps.select import Select
from datafactory.steps.self_instruct import SelfInstruct
from datafactory.steps.split import Split
from datafactory.steps.template import Template
from datafactory.steps.translate import Translate

STEPS: dict[str, type[Step]] = {cls.name: cls for cls in (
    Filter, Normalize, Dedup, NearDedup, Sample, Mix, Split, Template, Select, Rename, Translate, Respond, Judge, Pair, Evolve,
    SelfInstruct, Pii, Decontaminate, Quality, Language,
)}
