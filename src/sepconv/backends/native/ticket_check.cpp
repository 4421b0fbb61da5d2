// A frozen layer's ticket check (sepconv.backends.tickets) in one call: whether a prepared call still computes
// layer(x). The same comparisons as the Python check, without the interpreter between them: between two large
// kernels the interpreter's memory is cold, and MobileNet v1's 16 checks took 0.16-0.24 ms of a batch-1 inference
// in Python (4.5 us each when warm).

#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// Whether attribute `name` of `module` is a non-empty dict (a hook table with hooks in it).
bool has_entries(PyObject* module, PyObject* name) {
  PyObject* table = PyObject_GetAttr(module, name);
  if (table == nullptr) {
    PyErr_Clear();
    return true;  // unexpected: never valid
  }
  const bool filled = !PyDict_Check(table) || PyDict_GET_SIZE(table) != 0;
  Py_DECREF(table);
  return filled;
}

// Whether attribute "training" of `module` is the object `expected` (Py_True or Py_False).
bool training_is(PyObject* module, PyObject* name, PyObject* expected) {
  PyObject* flag = PyObject_GetAttr(module, name);
  if (flag == nullptr) {
    PyErr_Clear();
    return false;
  }
  const bool same = flag == expected;
  Py_DECREF(flag);
  return same;
}

std::optional<std::string> environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value == nullptr ? std::nullopt : std::optional<std::string>(value);
}

class TicketCheck {
 public:
  // x: the input the ticket was filed for; modules: the layer's modules, the layer first (not kept); tables: their
  // _parameters, _buffers and _modules dicts; entries: every (table, name, value) of those tables; tensors: the
  // values that are tensors; settings: the environment variables the prepared call depends on.
  TicketCheck(const at::Tensor& x, const py::list& modules, const py::list& tables, const py::list& entries,
              const std::vector<at::Tensor>& tensors, const std::vector<std::string>& settings)
      : sizes_(x.sizes().vec()), dtype_(x.scalar_type()), device_(x.device()), threads_(at::get_num_threads()),
        tensors_(tensors), names_(settings) {
    for (size_t i = 0; i < modules.size(); ++i) {
      py::object module = modules[i];
      trainings_.push_back(py::cast<bool>(module.attr("training")));
      if (i > 0) submodules_.push_back(module);
    }
    for (const auto& table : tables) {
      tables_.push_back(py::reinterpret_borrow<py::object>(table));
      table_sizes_.push_back(PyDict_GET_SIZE(table.ptr()));
    }
    for (const auto& entry : entries) {
      const py::tuple triple = py::reinterpret_borrow<py::tuple>(entry);
      entries_.push_back({triple[0], triple[1], triple[2]});
    }
    for (const auto& t : tensors_) {
      versions_.push_back(t.unsafeGetTensorImpl()->version_counter().current_version());
      pointers_.push_back(t.data_ptr());
    }
    for (const auto& name : names_) settings_.push_back(environment(name));
  }

  bool valid(const py::handle& layer, const at::Tensor& x) const {
    if (x.sizes() != at::IntArrayRef(sizes_) || x.scalar_type() != dtype_ || x.device() != device_ ||
        at::get_num_threads() != threads_)
      return false;
    for (size_t i = 0; i < names_.size(); ++i)
      if (environment(names_[i]) != settings_[i]) return false;
    static PyObject* training = PyUnicode_InternFromString("training");
    static PyObject* hooks = PyUnicode_InternFromString("_forward_hooks");
    static PyObject* pre_hooks = PyUnicode_InternFromString("_forward_pre_hooks");
    for (size_t i = 0; i < trainings_.size(); ++i) {
      PyObject* module = i == 0 ? layer.ptr() : submodules_[i - 1].ptr();
      if (!training_is(module, training, trainings_[i] ? Py_True : Py_False) || has_entries(module, hooks) ||
          has_entries(module, pre_hooks))
        return false;
    }
    for (size_t i = 0; i < tables_.size(); ++i)
      if (PyDict_GET_SIZE(tables_[i].ptr()) != table_sizes_[i]) return false;
    for (const auto& entry : entries_)
      if (PyDict_GetItem(entry.table.ptr(), entry.name.ptr()) != entry.value.ptr()) return false;  // borrowed
    for (size_t i = 0; i < tensors_.size(); ++i)
      if (tensors_[i].unsafeGetTensorImpl()->version_counter().current_version() != versions_[i] ||
          tensors_[i].data_ptr() != pointers_[i])
        return false;
    return true;
  }

 private:
  struct Entry {
    py::object table, name, value;
  };
  std::vector<int64_t> sizes_;
  at::ScalarType dtype_;
  at::Device device_;
  int threads_;
  std::vector<at::Tensor> tensors_;
  std::vector<std::string> names_;
  std::vector<std::optional<std::string>> settings_;
  std::vector<bool> trainings_;
  std::vector<py::object> submodules_, tables_;
  std::vector<Py_ssize_t> table_sizes_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> versions_;
  std::vector<void*> pointers_;
};

}  // namespace

void register_ticket_check(py::module_& m) {
  py::class_<TicketCheck>(m, "TicketCheck")
      .def(py::init<const at::Tensor&, const py::list&, const py::list&, const py::list&,
                    const std::vector<at::Tensor>&, const std::vector<std::string>&>())
      .def("valid", &TicketCheck::valid);
}
