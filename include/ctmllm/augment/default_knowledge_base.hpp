#pragma once
// The default normality knowledge base (written for this project, in the JSON format of
// augment/normality.hpp): per region, the organs and structures a radiologist routinely reports,
// each with the keywords that show the report already speaks of it and the sentence that states
// it is normal. The keywords name the structure broadly, so that any mention of it, normal or
// not, keeps the normal sentence out: the augmenter must never contradict a finding. Keywords are
// substrings, so short ones are avoided where they hide inside common words ("rib" in
// "distribution", "uter" in "outer").
// The pelvic reproductive organs get one sex-neutral entry, since the report does not say which
// organs the patient has.
#include <string_view>

#include <nlohmann/json.hpp>

#include "ctmllm/augment/normality.hpp"

namespace ctmllm::augment {

inline constexpr std::string_view kDefaultKnowledgeBaseJson = R"json({
  "chest": [
    {"keywords": ["lung|pulmonary"], "sentence": "Both lungs are clear, with no consolidation, mass or nodule."},
    {"keywords": ["heart|cardiac"], "sentence": "The heart is normal in size and shape."},
    {"keywords": ["pericard"], "sentence": "There is no pericardial effusion."},
    {"keywords": ["mediastin"], "sentence": "The mediastinum is central and not widened."},
    {"keywords": ["hila|hilum|hilar"], "sentence": "Both pulmonary hila are of normal size."},
    {"keywords": ["lymph", "mediastin|hila|hilum|hilar"], "sentence": "No enlarged mediastinal or hilar lymph nodes are seen."},
    {"keywords": ["trachea"], "sentence": "The trachea is patent and in the midline."},
    {"keywords": ["bronch"], "sentence": "The main bronchi are patent, with no narrowing."},
    {"keywords": ["pleura"], "sentence": "There is no pleural effusion or pleural thickening."},
    {"keywords": ["bone|bony|osseous|ribs|rib fracture|sternum|vertebra|spine"], "sentence": "The bones of the chest wall show no destructive lesion."}
  ],
  "abdomen": [
    {"keywords": ["liver|hepatic"], "sentence": "The liver is normal in size and contour, with uniform density and no focal lesion."},
    {"keywords": ["gallbladder"], "sentence": "The gallbladder is normal in size, with no stones or wall thickening."},
    {"keywords": ["bile duct|biliary"], "sentence": "The intrahepatic and extrahepatic bile ducts are not dilated."},
    {"keywords": ["pancrea"], "sentence": "The pancreas is normal in size and density, and the pancreatic duct is not dilated."},
    {"keywords": ["spleen|splenic"], "sentence": "The spleen is normal in size and density."},
    {"keywords": ["adrenal"], "sentence": "Both adrenal glands are normal in shape."},
    {"keywords": ["kidney|renal parenchyma|renal cortex|renal cyst|renal mass"], "sentence": "Both kidneys are normal in size and position, with no focal lesion."},
    {"keywords": ["renal pelvis|renal pelves|calyc|calic|pelvicalyceal|hydronephrosis"], "sentence": "The renal pelves and calyces are not dilated."},
    {"keywords": ["ureter"], "sentence": "The ureters are not dilated and show no calculi along their course."},
    {"keywords": ["bowel|intestin|colon|stomach|gastric"], "sentence": "The bowel wall is not thickened, and there is no sign of obstruction."},
    {"keywords": ["lymph"], "sentence": "No enlarged retroperitoneal or abdominal lymph nodes are seen."},
    {"keywords": ["ascites|peritoneal fluid|abdominal fluid|free fluid"], "sentence": "There is no ascites."}
  ],
  "pelvis": [
    {"keywords": ["bladder"], "sentence": "The bladder is adequately filled, with a smooth wall and no filling defect."},
    {"keywords": ["prostat|seminal|uterus|uterine|adnex|ovar"], "sentence": "The pelvic reproductive organs are normal in size and density."},
    {"keywords": ["lymph"], "sentence": "No enlarged pelvic lymph nodes are seen."},
    {"keywords": ["effusion|fluid|ascites"], "sentence": "There is no pelvic effusion."},
    {"keywords": ["bowel|intestin|colon|rectum|rectal|sigmoid"], "sentence": "The pelvic bowel loops are normal, with no wall thickening."},
    {"keywords": ["fat"], "sentence": "The pelvic fat planes are clear."},
    {"keywords": ["bone|bony|sacr|acetabul|pelvic ring"], "sentence": "The pelvic bones show no destructive lesion."}
  ]
})json";

inline KnowledgeBase default_knowledge_base() {
  return KnowledgeBase::from_json(nlohmann::json::parse(kDefaultKnowledgeBaseJson), "default knowledge base");
}

}  // namespace ctmllm::augment
